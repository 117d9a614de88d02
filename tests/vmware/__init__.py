"""VMware backend tests (vcsim)."""
