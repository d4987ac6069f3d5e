"""Training objectives: the reference loss mix and the VGG16 perceptual term."""
