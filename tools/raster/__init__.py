"""The Pillow twin of the service's word rasteriser (src/clip/raster.ts)."""
