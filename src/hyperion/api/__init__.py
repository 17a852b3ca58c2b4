"""The control plane's API: user documents, the transport-agnostic service, REST and gRPC."""
