"""The gRPC server: servicer, watch hub, status mapping, process setup."""
