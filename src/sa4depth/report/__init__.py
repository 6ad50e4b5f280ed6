"""sa4depth.report"""
