"""Two environments' live states, compared through the manifest keys (`avatarsync diff`).

Ids differ per organisation, so resources are matched by address; links
compare by key. Each side's live spec is its desired spec with the plan's
field changes undone (what the plan read), so the comparison needs no second
read of either organisation. A field whose values differ only because each
environment's manifests say so (its `vars`) is expected, not a difference.
Knowledge-base documents are not compared (their content is not readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avatarsync.planning.plan import Action, Plan
from avatarsync.resources import Address, DesiredState, comparable

__all__ = ["EnvironmentDiff", "FieldDifference", "compare_environments"]


@dataclass(frozen=True)
class FieldDifference:
    address: Address
    field: str
    source: Any  # None when the resource is missing on that side
    target: Any
    sensitive: bool = False


@dataclass(frozen=True)
class EnvironmentDiff:
    """Two environments' live states, compared through the manifest keys."""

    source: str
    target: str
    differences: tuple[FieldDifference, ...]
    missing_in_source: tuple[Address, ...]
    missing_in_target: tuple[Address, ...]
    compared: int

    @property
    def equal(self) -> bool:
        return not (self.differences or self.missing_in_source or self.missing_in_target)


def compare_environments(
    source: tuple[Plan, DesiredState], target: tuple[Plan, DesiredState]
) -> EnvironmentDiff:
    """Each side is the plan of one environment and its desired state."""
    (plan_s, desired_s), (plan_t, desired_t) = source, target
    live_s, live_t = _live_specs(plan_s, desired_s), _live_specs(plan_t, desired_t)
    differences: list[FieldDifference] = []
    missing_s: list[Address] = []
    missing_t: list[Address] = []
    addresses = sorted(set(desired_s.resources) | set(desired_t.resources))
    for address in addresses:
        spec_s, spec_t = live_s.get(address), live_t.get(address)
        if spec_s is None or spec_t is None:
            if spec_s is None:
                missing_s.append(address)
            if spec_t is None:
                missing_t.append(address)
            continue
        want_s = desired_s.resources.get(address)
        want_t = desired_t.resources.get(address)
        sensitive: set[str] = set()
        for want in (want_s, want_t):
            if want is not None:
                sensitive |= want.sensitive_fields
        for name in sorted(set(spec_s) | set(spec_t)):
            a, b = spec_s.get(name), spec_t.get(name)
            if a == b:
                continue
            expected = (
                want_s is not None
                and want_t is not None
                and comparable(want_s.spec).get(name) == a
                and comparable(want_t.spec).get(name) == b
            )
            if not expected:
                differences.append(FieldDifference(address, name, a, b, name in sensitive))
    return EnvironmentDiff(
        plan_s.environment,
        plan_t.environment,
        tuple(differences),
        tuple(missing_s),
        tuple(missing_t),
        len(addresses),
    )


def _live_specs(plan: Plan, desired: DesiredState) -> dict[Address, Any]:
    """Each managed resource's live spec as the manifests write it (links as keys):
    the desired spec with every field change undone."""
    specs: dict[Address, Any] = {}
    for change in plan.changes:
        resource = desired.resources.get(change.address)
        if resource is None or change.leftover or change.action is Action.CREATE:
            continue
        spec = comparable(resource.spec)
        for changed in change.fields:
            spec[changed.field] = changed.before
        specs[change.address] = spec
    return specs
