"""Tests of the provider layer, against the fake provider over real sockets."""
