"""sbida_client: Python client of the sbida assimilation daemon (HTTP/JSON API v1).

    from sbida_client import Client
    c = Client("http://127.0.0.1:8080")
    job = c.assimilate("l96-sakov-etkf", observations, time_index=9,
                       operator={"type": "subsample", "stride": 2}, noise_std=1.5)
    job.mean, job.std, c.samples(job.id)

Standard library only; with numpy, arrays in and arrays out.
"""
from .client import Client, Job
from .errors import JobFailed, ProblemError, SbidaError, Unreachable, WaitTimeout

__version__ = "0.1.0"
__all__ = ["Client", "Job", "SbidaError", "ProblemError", "JobFailed", "Unreachable", "WaitTimeout"]
