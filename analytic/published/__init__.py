"""Formula sets from the literature and from the tools people size runs with, one module each, with the source
cited and its constants as published."""
