"""A model of vLLM's V1 engine for autoscaling: scheduler, paged KV cache, metrics, fleet, HTTP."""

from simulator.engine.clock import Clock, ScaledClock, VirtualClock
from simulator.engine.fleet import Fleet, Replica
from simulator.engine.profile import Profile, ProfileError, load
from simulator.engine.request import Request
from simulator.engine.scheduler import Engine
from simulator.engine.server import FleetHandle, serve_fleet

__all__ = ["Clock", "Engine", "Fleet", "FleetHandle", "Profile", "ProfileError", "Replica", "Request", "ScaledClock",
           "VirtualClock", "load", "serve_fleet"]
