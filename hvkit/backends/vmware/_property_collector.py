"""Bulk reads through the PropertyCollector: the only way this backend reads properties.

Every inventory read is one ``RetrievePropertiesEx`` over a ContainerView (kept open for the
session, so a listing costs one round trip however many objects there are), continued with
``ContinueRetrievePropertiesEx`` when the server pages the answer. Single objects are read the same
way, with the object itself in the ObjectSpec. Reading a managed object's attribute directly
(``vm.name``) is never done: it costs a round trip per property, and pyvmomi 8+ reads through
``Fetch``, which some servers (vcsim) fail on unset properties.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

vim: Any = _vim  # pyVmomi's generated types are untyped for mypy
vmodl: Any = _vmodl

__all__ = ["Collector", "Props"]

Props = dict[str, Any]


class Collector:
    """Reads properties of many objects in as few round trips as the server allows."""

    def __init__(self, content: Any, page_size: int | None = None) -> None:
        self._content = content
        self._pc = content.propertyCollector
        self._page_size = page_size
        self._views: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()

    # -- views -----------------------------------------------------------------------------------
    def view(self, root: Any, types: Sequence[type]) -> Any:
        """A recursive ContainerView of ``types`` under ``root``, created once per session."""
        key = (root._moId, tuple(sorted(getattr(t, "_wsdlName", t.__name__) for t in types)))
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._content.viewManager.CreateContainerView(root, list(types), True)
                self._views[key] = view
            return view

    def close(self) -> None:
        with self._lock:
            views, self._views = list(self._views.values()), {}
        for view in views:
            try:
                view.DestroyView()
            except Exception:  # the session may be gone already
                pass

    # -- reads -----------------------------------------------------------------------------------
    def collect(self, root: Any, props: Mapping[type, Sequence[str]]) -> list[tuple[Any, Props]]:
        """Every object of the given types under ``root``, each with the properties asked for it."""
        view = self.view(root, list(props))
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="view", path="view", skip=False, type=vim.view.ContainerView
        )
        obj_spec = vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])
        return self._retrieve([obj_spec], props)

    def read(self, obj: Any, paths: Sequence[str]) -> Props:
        """Properties of one object (unset ones are absent from the result)."""
        found = self.read_many([obj], paths)
        return found[0][1] if found else {}

    def read_many(self, objs: Iterable[Any], paths: Sequence[str]) -> list[tuple[Any, Props]]:
        """Properties of several objects of one type, in one round trip."""
        objs = list(objs)
        if not objs:
            return []
        specs = [vmodl.query.PropertyCollector.ObjectSpec(obj=o, skip=False) for o in objs]
        return self._retrieve(specs, {type(objs[0]): paths})

    def _retrieve(self, obj_specs: list[Any], props: Mapping[type, Sequence[str]]) -> list[tuple[Any, Props]]:
        prop_specs = [
            vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=list(paths), all=False)
            for kind, paths in props.items()
        ]
        spec = vmodl.query.PropertyCollector.FilterSpec(objectSet=obj_specs, propSet=prop_specs)
        options = vmodl.query.PropertyCollector.RetrieveOptions()
        if self._page_size:
            options.maxObjects = self._page_size
        out: list[tuple[Any, Props]] = []
        result = self._pc.RetrievePropertiesEx([spec], options)
        while result is not None:
            for content in result.objects or []:
                out.append((content.obj, {p.name: p.val for p in content.propSet or []}))
            if not result.token:
                break
            result = self._pc.ContinueRetrievePropertiesEx(result.token)
        return out
