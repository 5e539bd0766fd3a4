"""Programs AutoPod's tests, benchmarks and demo run in pods, and the clients that watch them."""
