"""sa4depth.models"""
