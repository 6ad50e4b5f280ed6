"""sa4depth.evaluate"""
