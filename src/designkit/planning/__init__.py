"""Design → plan (no torch): randomize, budget, place, leakage, power, plan files."""

from designkit.planning.planfile import Plan
from designkit.planning.planner import PlanResult, make_plan

__all__ = ["Plan", "PlanResult", "make_plan"]
