"""Images: local image processing only: subset selection, resizing and building (nothing from met/)."""
