"""sa4depth.data"""
