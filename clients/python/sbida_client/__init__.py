"""sbida_client: Python client of the sbida assimilation daemon (HTTP/JSON API v1).

    from sbida_client import Client
    c = Client("http://127.0.0.1:8080")
    job = c.assimilate("l96-sakov-etkf", observations, time_index=9,
                       operator={"type": "subsample", "stride": 2}, noise_std=1.5)
    job.mean, job.std, c.samples(job.id)

    s = c.stream("l96-sakov-etkf", operator={"type": "identity"}, noise_std=1.0,
                 n_samples=40, params={"inflation": 1.02})     # cycling kept by the daemon
    job = s.cycle(t, y_t)          # one analysis: y_t plus the forecast of the last one
    c.forecast(job, steps=5)       # ensemble forecast of a job's samples

Standard library only; with numpy, arrays in and arrays out.
"""
from .client import Client, Job, Stream
from .errors import JobFailed, ProblemError, SbidaError, Unreachable, WaitTimeout

__version__ = "0.1.0"
__all__ = ["Client", "Job", "Stream", "SbidaError", "ProblemError", "JobFailed", "Unreachable", "WaitTimeout"]
