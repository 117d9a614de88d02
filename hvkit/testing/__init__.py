"""Testing aids: the public conformance suite, a call-recording backend, protocol simulators."""
