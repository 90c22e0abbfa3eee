"""aperflow: aperture photometry of astronomical images, as plain functions and a Snakemake
workflow. Every module is usable from a notebook; the workflow only calls them."""

__version__ = "0.1.0"
