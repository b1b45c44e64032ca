"""Sensing: the hardware behind the ports: frame sources (Pi camera, OpenCV, recordings) and the ultrasonic rangers."""
