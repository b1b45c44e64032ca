"""Core: the data that flows (frozen dataclasses), the clock, the strict config, typed faults and the ports every part plugs into. Pure; imports nothing else of device."""
