"""Images: download validation, resizing and training subset building."""
