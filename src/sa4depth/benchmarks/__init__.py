"""sa4depth.benchmarks"""
