"""One module per CLI verb (see sa4depth.cli)."""
