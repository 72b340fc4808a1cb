"""Live + state → plan → apply: the second direction of the flow.

live       the platform's objects in the manifests' shape (one paged list per kind)
builder    build_plan: desired + live + state → Plan (pure)
plan       the Plan: frozen, serialisable data, and its safety check
apply      the executor: runs a Plan against the API, saving state after every call
report     what apply did
export     live organisation → manifests and state
"""
