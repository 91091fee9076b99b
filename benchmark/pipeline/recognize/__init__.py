"""The recognize stage: embed every image, match queries to the database."""
