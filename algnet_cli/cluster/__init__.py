"""The same ``algnet deblur`` job on a Ray cluster (optional: ``pip install 'algnet-cli[ray]'``).

``connect``: reaching a cluster (an existing one by address, or a local one started for the run).
``worker``: the actor, one per GPU (or per CPU worker), that loads the model once. ``driver``: the
scheduler that feeds image files to the actors and streams video frames through them, with retries
when a worker or node is lost. ``videos``: videos cut into keyframe segments. ``executor``: the plan
carried out by them, through the same ``execute`` as on one machine. The single-machine path never imports this package (nor Ray).
"""

from .connect import INSTALL_HINT, ClusterOptions
from .executor import execute_on_cluster

__all__ = ["INSTALL_HINT", "ClusterOptions", "execute_on_cluster"]
