"""Tool adapters: the boundary through which steps call external systems."""

from squidmesh.tools.base import Adapter, ToolContext, ToolError, ToolResult, invoke
from squidmesh.tools.http import HTTP, HTTPRequest

__all__ = ["HTTP", "Adapter", "HTTPRequest", "ToolContext", "ToolError", "ToolResult", "invoke"]
