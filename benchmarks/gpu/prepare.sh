#!/usr/bin/env bash
# Build the git-ignored folders that travel with the repo to a lent GPU (64 MiB a call, repo
# included), here, before the first device call (costs no device time):
#   .gpu/        JPEG-q90 shards at 128 px + the VGG16 weights of Model 3's perceptual loss:
#                carried by the first call only, then kept on the warm machine
#   .gpu-lpips/  the LPIPS-alex weights, carried by the evaluation call
#
#   bash benchmarks/gpu/prepare.sh                 # FACES=7500 QUALITY=90 MASKS=8000 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
FACES=${FACES:-7500} QUALITY=${QUALITY:-90} MASKS=${MASKS:-8000}
SHARED=${FACEFILL_SHARED:-$(cd .. && pwd)/shared}
LIMIT_MIB=${LIMIT_MIB:-61}

rm -rf .gpu.tmp .gpu-lpips && mkdir -p .gpu.tmp/weights .gpu-lpips
python -m data_prep.pack --faces "$SHARED/data/faces" --masks "$SHARED/data/masks" --size 128 \
    --encoding jpeg --quality "$QUALITY" --limit "$FACES" --mask-limit "$MASKS" --out .gpu.tmp/shards/128
python -m data_prep.verify .gpu.tmp/shards/128
cp "$SHARED/weights/vgg16_imagenet_features_relu3_3.pth" .gpu.tmp/weights/
cp "$SHARED/weights/alexnet_imagenet_features.pth" "$SHARED/weights/lpips_alex_v0.1_lin.pth" .gpu-lpips/
rm -rf .gpu && mv .gpu.tmp .gpu

# What travels: tracked files + untracked-not-ignored files + .gpu (carried).
repo=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
total=$(( (repo + gpu) / 1048576 ))
python -c 'import json; print("counts:", json.load(open(".gpu/shards/128/index.json"))["counts"])'
echo "first call carries repo $((repo / 1024)) KiB + .gpu $((gpu / 1024)) KiB = ${total} MiB (limit 64 MiB; this script stops at ${LIMIT_MIB})"
if (( total > LIMIT_MIB )); then
    echo "prepare.sh: ${total} MiB would not travel: lower FACES (now $FACES) or QUALITY (now $QUALITY)" >&2
    exit 1
fi
