"""The dependency closure of requested packages for one suite and architecture, as apt would pick it.

Pure: a Universe of stanzas and a Base (what the target already has) in, the packages to mirror
out. The rules follow apt's: each name's candidate is its highest version across the suites; a
dependency already met by the base or the selection needs nothing; otherwise the first satisfiable
alternative of an `a | b` group is taken, a real package before a virtual one, and among providers
one already chosen, then the most important (Essential, Priority), then the first listed.
Closures are per architecture: `:any` / `:native` qualifiers resolve in the target architecture.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from debian.debian_support import version_compare

from .errors import UnsatisfiableError
from .index import PackagesIndex, Stanza, parse_packages, split_provides

__all__ = ["Universe", "Base", "Request", "Closure", "resolve_closure", "suggest", "minimal_system"]

_PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}
_OPS = {
    "<<": lambda c: c < 0, "<=": lambda c: c <= 0, "=": lambda c: c == 0,
    ">=": lambda c: c >= 0, ">>": lambda c: c > 0, "<": lambda c: c <= 0, ">": lambda c: c >= 0,
}


def _version_ok(have: str | None, constraint: tuple[str, str] | None) -> bool:
    if constraint is None:
        return True
    if have is None:  # an unversioned Provides never satisfies a versioned dependency
        return False
    op, want = constraint
    return bool(_OPS[op](version_compare(have, want)))


class Universe:
    """What the searched suites have for one architecture (and `all`), looked up by name.

    Built over whole Packages indexes (and loose stanzas: .debs named by URL), in the order given:
    a name's versions are read from them when it is first asked for, never all at once. A name's
    candidate is its highest version; the same version listed twice (binary-all and binary-ARCH, or
    two suites) counts once, as first listed. Only candidates provide (apt looks at candidate versions)."""

    def __init__(self, sources: Iterable[Stanza | PackagesIndex], arch: str, *, searched: Sequence[str] = ()) -> None:
        self.arch = arch
        self.searched = tuple(searched)
        self._parts: list[PackagesIndex | _Loose] = []
        loose: list[Stanza] = []
        for item in sources:
            if isinstance(item, PackagesIndex):
                if loose:
                    self._parts.append(_Loose(loose))
                    loose = []
                self._parts.append(item)
            else:
                loose.append(item)
        if loose:
            self._parts.append(_Loose(loose))
        self._versions: dict[str, list[Stanza]] = {}
        self._first: dict[str, tuple[int, int]] = {}  # where a name's first version is listed
        self._candidates: dict[str, Stanza | None] = {}
        self._providers: dict[str, list[tuple[Stanza, str | None]]] = {}

    def versions(self, name: str) -> list[Stanza]:
        """Every version of `name` for this architecture, in the order the sources list them."""
        got = self._versions.get(name)
        if got is None:
            got = []
            for i, part in enumerate(self._parts):
                for at, s in part.located(name):
                    a = s.architecture
                    if (a == self.arch or a == "all") and not any(h.version == s.version and h.architecture == a
                                                                   for h in got):
                        got.append(s)
                        self._first.setdefault(name, (i, at))
            self._versions[name] = got
        return got

    def candidate(self, name: str) -> Stanza | None:
        if name in self._candidates:
            return self._candidates[name]
        versions = self.versions(name)
        best = versions[0] if versions else None
        for s in versions[1:]:
            if s.version != best.version and version_compare(s.version, best.version) > 0:  # type: ignore[union-attr]
                best = s
        self._candidates[name] = best
        return best

    def version(self, name: str, version: str) -> Stanza | None:
        return next((s for s in self.versions(name) if version_compare(s.version, version) == 0), None)

    def providers(self, name: str) -> list[tuple[Stanza, str | None]]:
        """The candidates that provide `name`, each with the version it provides (if it gives one),
        in the order their names first appear in the sources."""
        got = self._providers.get(name)
        if got is None:
            got = [(s, ver) for part in self._parts for s, ver in part.provided(name) if self.candidate(s.package) is s]
            got.sort(key=lambda sv: self._first[sv[0].package])
            self._providers[name] = got
        return got

    def names(self) -> Iterable[str]:
        """Every package name the sources list (for any architecture)."""
        return {n for part in self._parts for n in part.names()}

    def required(self) -> list[Stanza]:
        """The candidates a minimal Debian system has: Essential or Priority: required."""
        out: dict[str, Stanza] = {}
        for part in self._parts:
            for line in (*part.lines(b"Priority: required"), *part.lines(b"Essential: yes")):
                s = part.stanza_at(line)
                if (s is not None and s.package not in out and self.candidate(s.package) is s
                        and (s.value("Priority") == "required" or s.value("Essential") == "yes")):
                    out[s.package] = s
        return list(out.values())


class _Loose:
    """Stanzas given one by one (.debs named by URL), read as a PackagesIndex is."""

    def __init__(self, stanzas: list[Stanza]) -> None:
        self._stanzas = stanzas
        self._by_name: dict[str, list[tuple[int, Stanza]]] = {}
        for i, s in enumerate(stanzas):
            self._by_name.setdefault(s.package, []).append((i, s))

    def names(self) -> Iterable[str]:
        return self._by_name.keys()

    def located(self, name: str) -> list[tuple[int, Stanza]]:
        return self._by_name.get(name, [])

    def provided(self, name: str) -> list[tuple[Stanza, str | None]]:
        return [(s, ver) for s in self._stanzas for virtual, ver in split_provides(s.provides) if virtual == name]

    def lines(self, text: bytes) -> list[int]:
        field_name, _, value = text.decode().partition(": ")
        return [i for i, s in enumerate(self._stanzas) if s.value(field_name) == value]

    def stanza_at(self, line: int) -> Stanza:
        return self._stanzas[line]


@dataclass(slots=True)
class Base:
    """What the target already has installed: name → version, and what those provide."""

    versions: dict[str, str] = field(default_factory=dict)
    provides: dict[str, list[str | None]] = field(default_factory=dict)
    label: str = "nothing"
    # The target's own installed versions (its dpkg status), not a model of a minimal system: a
    # model has names, but an image older than the suite has older versions of them.
    exact: bool = False

    @classmethod
    def of(cls, stanzas: Iterable[Stanza], label: str) -> Base:
        base = cls(label=label)
        for s in stanzas:
            base.versions[s.package] = s.version
            if s.provides:
                for name, ver in split_provides(s.provides):
                    base.provides.setdefault(name, []).append(ver)
        return base

    @classmethod
    def from_status(cls, text: str, label: str) -> Base:
        """A dpkg status file (/var/lib/dpkg/status of the target image): its installed packages."""
        installed = [s for s in parse_packages(text) if (s.get("Status") or "").endswith(" installed")]
        base = cls.of(installed, label)
        base.exact = True
        return base


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    name: str
    version: str | None = None
    arch: str | None = None
    origin: str  # "app shop (Aptfile:3)"


@dataclass(slots=True)
class Closure:
    packages: dict[str, Stanza] = field(default_factory=dict)
    why: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Of the packages, the base packages carried because a versioned dependency names them: what an
    # image older than the suite upgrades (apt on an image as new as the suite installs none of them).
    base_upgrades: set[str] = field(default_factory=set)


def suggest(name: str, names: Iterable[str]) -> list[str]:
    """Real package names close to one the suite lacks (RPM names, renamed or gone packages, typos)."""
    pool = set(names)
    low = name.lower()
    guesses = [low, low.replace("-devel", "-dev"), low.replace("_", "-")]
    if low.startswith("python-"):
        guesses.append("python3-" + low[len("python-"):])
    if low.endswith("-devel"):
        guesses.append("lib" + low[: -len("-devel")] + "-dev")
    out = [g for g in dict.fromkeys(guesses) if g in pool and g != name]
    # `libpng` → libpng-dev, libpng16-16: the name a real package starts with.
    out += sorted((n for n in pool if n.startswith(low) and n[len(low):len(low) + 1] in "-0123456789" and n not in out),
                  key=len)[:2]
    for g in dict.fromkeys(guesses):  # (most guesses are the name itself again: each looked for once)
        out += [m for m in _close_matches(g, pool) if m not in out]
    return out[:4]


def _close_matches(word: str, pool: Iterable[str], n: int = 4, cutoff: float = 0.75) -> list[str]:
    """difflib.get_close_matches, over the names that can match: difflib's ratio is at most its
    quick_ratio, 2 * (characters in common) / (both lengths), and a name has at most as many
    characters in common with `word` as it has characters `word` uses at all, so a name whose
    bound is under `cutoff` is left out before difflib compares it (the same answer; bookworm's
    63,436 names, 73 names looked for: 5.9 s against 8.9 s)."""
    others = str.maketrans("", "", "".join(set(word)))  # deletes the characters `word` uses
    least = cutoff - 1e-9
    return difflib.get_close_matches(word, [x for x in pool if 2.0 * (len(x) - len(x.translate(others)))
                                            >= least * (len(x) + len(word))], n=n, cutoff=cutoff)


def resolve_closure(universe: Universe, requests: Sequence[Request], base: Base, *,
                    with_recommends: bool = False) -> Closure:
    """The packages to mirror so that `apt-get install` of every request succeeds on top of `base`."""
    closure = _Closure(universe, base, with_recommends)
    for req in requests:
        closure.request(req)
    closure.settle()
    return closure.result


class _Closure:
    """One closure in the making: apt's choices, in apt's order (a request marked, its plain
    dependencies marked before descending, `a | b` groups settled once the plain ones are in)."""

    def __init__(self, universe: Universe, base: Base, with_recommends: bool) -> None:
        self.universe, self.base, self.with_recommends = universe, base, with_recommends
        self.result = Closure()
        self.searched = ", ".join(universe.searched) or "the configured suites"
        self.deferred: list[tuple[Stanza, tuple[str, ...], str, list[dict[str, Any]]]] = []

    def fail(self, chain: Sequence[str], what: str) -> UnsatisfiableError:
        return UnsatisfiableError(f"{' → '.join(chain)}: {what} (searched {self.searched}, {self.universe.arch})")

    def arch_ok(self, rel: dict[str, Any]) -> bool:
        if rel.get("arch"):
            enabled = [r.arch for r in rel["arch"] if r.enabled]
            disabled = [r.arch for r in rel["arch"] if not r.enabled]
            if enabled and self.universe.arch not in enabled:
                return False
            if self.universe.arch in disabled:
                return False
        return rel.get("archqual") in (None, "any", "native", self.universe.arch)

    def satisfied(self, rel: dict[str, Any]) -> bool:
        name, constraint = rel["name"], rel.get("version")
        chosen = self.result.packages.get(name)
        if chosen is not None and _version_ok(chosen.version, constraint):
            return True
        if name in self.base.versions and _version_ok(self.base.versions[name], constraint):
            return True
        if any(_version_ok(v, constraint) for v in self.base.provides.get(name, ())):
            return True
        return any(s.package in self.result.packages and _version_ok(v, constraint)
                   for s, v in self.universe.providers(name))

    def installable(self, rel: dict[str, Any]) -> Stanza | None:
        name, constraint = rel["name"], rel.get("version")
        cand = self.universe.candidate(name)
        if cand is not None and _version_ok(cand.version, constraint):
            return cand
        provs = [s for s, v in self.universe.providers(name) if _version_ok(v, constraint)]
        if not provs:
            return None
        return min(provs, key=lambda s: (s.package not in self.result.packages and s.package not in self.base.versions,
                                         s.get("Essential") != "yes",
                                         _PRIORITY.get(s.get("Priority") or "optional", 3)))

    def conflicts(self, stanza: Stanza) -> bool:
        """Whether choosing `stanza` would clash with the selection (apt skips such alternatives)."""
        def hits(a: Stanza, b: Stanza) -> bool:
            return any(rel["name"] == b.package and _version_ok(b.version, rel.get("version"))
                       for f in ("Conflicts", "Breaks") for group in a.relations(f) for rel in group)
        return any(hits(stanza, other) or hits(other, stanza) for other in self.result.packages.values())

    def base_upgrade(self, alts: list[dict[str, Any]]) -> Stanza | None:
        """A versioned dependency on a package the model of the base has (perl on `perl-base (=
        5.36.0-7+deb12u3)`): an image older than the suite has an older version, and apt must upgrade
        it from the mirror, so the suite's version is carried. Not for the target's own dpkg status,
        whose versions are known."""
        if self.base.exact or len(alts) != 1 or not alts[0].get("version"):
            return None
        name = alts[0]["name"]
        if name not in self.base.versions or name in self.result.packages:
            return None
        cand = self.universe.candidate(name)
        return cand if cand is not None and _version_ok(cand.version, alts[0]["version"]) else None

    def choose(self, stanza: Stanza, chain: tuple[str, ...], fname: str, alts: list[dict[str, Any]]) -> Stanza | None:
        if any(self.satisfied(rel) for rel in alts):
            upgrade = self.base_upgrade(alts)
            if upgrade is not None:
                self.result.packages[upgrade.package] = upgrade
                self.result.why[upgrade.package] = chain + (upgrade.package,)
                self.result.base_upgrades.add(upgrade.package)
            return upgrade
        options = [c for c in (self.installable(rel) for rel in alts) if c is not None]
        pick = next((c for c in options if not self.conflicts(c)), options[0] if options else None)
        if pick is None:
            if fname == "Recommends":
                return None
            text = " | ".join(rel["name"] + (f" ({rel['version'][0]} {rel['version'][1]})" if rel.get("version") else "")
                              for rel in alts)
            raise self.fail(chain, f"{stanza.package} {stanza.version} {fname.lower()} on {text}, which no suite provides")
        if pick.package in self.result.packages:
            return None
        self.result.packages[pick.package] = pick
        self.result.why[pick.package] = chain + (pick.package,)
        return pick

    def expand(self, stanza: Stanza, chain: tuple[str, ...]) -> None:
        # Like apt's MarkInstall: every plain dependency is marked before descending, and `a | b`
        # groups wait until the plain ones are in, so a package pulled in anyway can meet them.
        picked: list[Stanza] = []
        fields = ["Pre-Depends", "Depends"] + (["Recommends"] if self.with_recommends else [])
        for fname in fields:
            for group in stanza.relations(fname):
                alts = [rel for rel in group if self.arch_ok(rel)]
                if not alts:
                    continue
                if len(alts) > 1:
                    self.deferred.append((stanza, chain, fname, alts))
                    continue
                pick = self.choose(stanza, chain, fname, alts)
                if pick is not None:
                    picked.append(pick)
        for pick in picked:
            self.expand(pick, self.result.why[pick.package])

    def settle(self) -> None:
        while self.deferred:
            stanza, chain, fname, alts = self.deferred.pop(0)
            pick = self.choose(stanza, chain, fname, alts)
            if pick is not None:
                self.expand(pick, self.result.why[pick.package])

    def mark(self, stanza: Stanza, chain: tuple[str, ...]) -> None:
        if stanza.package in self.result.packages:
            return
        self.result.packages[stanza.package] = stanza
        self.result.why[stanza.package] = chain
        self.expand(stanza, chain)

    def request(self, req: Request) -> None:
        """Mark one request (an Aptfile line) and what it needs."""
        chain = (req.origin, req.name)
        if req.arch not in (None, self.universe.arch, "any", "native"):
            return  # asked for another architecture: that closure handles it
        if req.version:
            stanza = self.universe.version(req.name, req.version)
            if stanza is None:
                have = sorted({s.version for s in self.universe.versions(req.name)})
                raise self.fail(chain, f"version {req.version} of {req.name} is not in the suites"
                           + (f" (they have {', '.join(have)})" if have else ""))
        else:
            stanza = self.universe.candidate(req.name)
            if stanza is None:
                provs = sorted({s.package for s, _ in self.universe.providers(req.name)})
                if len(provs) == 1:
                    stanza = self.universe.candidate(provs[0])
                elif provs:
                    raise self.fail(chain, f"{req.name} is a virtual package provided by {', '.join(provs)}: name one of them")
                else:
                    close = [n for n in suggest(req.name, self.universe.names()) if self.universe.candidate(n) is not None]
                    raise self.fail(chain, f"no package named {req.name!r}"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
        assert stanza is not None
        if self.base.versions.get(stanza.package) == stanza.version:
            return  # already the newest version on the target
        self.mark(stanza, chain)


def minimal_system(universe: Universe) -> Base:
    """The default base: a lower bound of what a minimal system of the suite has installed.

    Every Essential / Priority: required package, and what they depend on with no choice: a single
    real package. An `a | b` group, or a name only virtual packages provide, adds nothing, since the
    target may have picked either (debootstrap takes `usr-is-merged` where the first alternative,
    `usrmerge`, would pull in perl). A package assumed present that the target lacks is left out of
    the mirror and breaks `apt-get install` inside; one mirrored needlessly costs only space.
    """
    have: dict[str, Stanza] = {}
    todo = list(universe.required())
    while todo:
        stanza = todo.pop()
        if stanza.package in have:
            continue
        have[stanza.package] = stanza
        for fld in ("Pre-Depends", "Depends"):
            for group in stanza.relations(fld):
                if len(group) != 1:
                    continue
                rel = group[0]
                dep = universe.candidate(rel["name"])
                if dep is not None and dep.package not in have and _version_ok(dep.version, rel.get("version")):
                    todo.append(dep)
    return Base.of(have.values(), label="the suite's required packages")
