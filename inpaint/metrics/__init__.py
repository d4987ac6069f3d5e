"""Image-quality scores: PSNR/SSIM/L1, LPIPS, identity distance and the landmarks behind feature masks."""
