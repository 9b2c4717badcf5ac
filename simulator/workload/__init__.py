"""Workloads for the simulator: built-in scenarios, CSV traces and the shipped Azure trace."""

from simulator.workload.scenarios import Scenario, by_name, generate, scenarios
from simulator.workload.trace import Arrival, TraceError, Workload, azure_conversation, load_csv, parse_csv

__all__ = ["Arrival", "Scenario", "TraceError", "Workload", "azure_conversation", "by_name", "generate", "load_csv",
           "parse_csv", "scenarios"]
