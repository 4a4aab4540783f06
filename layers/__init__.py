"""Ingest and normalisation: sources (GIS, BIM, raster, LiDAR) to canonical layers."""
