"""Output: what the runner feels and hears: alert patterns on gpiozero pins and the stall guard."""
