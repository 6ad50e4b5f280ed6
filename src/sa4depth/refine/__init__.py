"""sa4depth.refine"""
