"""Exceptions of the sbida client. Every error the daemon answers is an RFC 9457
problem; it is raised as ProblemError carrying type, title, status and detail."""
from typing import Any, Dict, Optional


class SbidaError(Exception):
    """Base class of every error raised by sbida_client."""


class ProblemError(SbidaError):
    """The daemon answered an application/problem+json error (4xx or 5xx)."""

    def __init__(self, problem: Dict[str, Any], status: Optional[int] = None):
        self.problem = dict(problem)
        self.type: str = str(problem.get("type", "about:blank"))
        self.title: str = str(problem.get("title", ""))
        self.status: int = int(problem.get("status", status or 0))
        self.detail: str = str(problem.get("detail", ""))
        self.instance: Optional[str] = problem.get("instance")
        super().__init__("%s %s: %s" % (self.status, self.title, self.detail))


class JobFailed(SbidaError):
    """A job ended failed or cancelled; .job is the job, .problem its error (if any)."""

    def __init__(self, job: "Any"):
        self.job = job
        err = job.error or {}
        self.problem = err
        self.type = err.get("type")
        self.title = err.get("title")
        self.status = err.get("status")
        self.detail = err.get("detail")
        super().__init__("job %s %s%s" % (job.id, job.state, (": " + self.detail) if self.detail else ""))


class Unreachable(SbidaError):
    """The daemon could not be reached (or kept answering 429/503) within the retry budget."""


class WaitTimeout(SbidaError, TimeoutError):
    """The job did not finish within the time given to wait()."""

    def __init__(self, job: "Any", timeout: float):
        self.job = job
        super().__init__("job %s still %s after %gs" % (job.id, job.state, timeout))
