"""Generated agentd.v1 protobuf and gRPC modules (built from proto/agentd/v1 by CMake)."""
