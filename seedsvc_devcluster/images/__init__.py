"""Container images of the local cluster's real pod layer, built from deploy/images/*.Dockerfile."""
