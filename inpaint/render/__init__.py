"""Pictures for people: line charts and image grids, drawn with Pillow."""
