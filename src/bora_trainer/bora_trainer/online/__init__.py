"""The online phase (Sec. 3.2, Algorithm 1): ONE loop, two interchangeable environments.

``loop.py`` (rounds, ingest-once, updates, freeze/fold, rebase, resume; ``checkpoints.py``: checkpoints,
round archives, rebase rule; ``rounds.py``: round accounting and the episode gate) takes complete
episodes from an episode source: ``env_sim.py`` (the simulated robot in this process) or ``env_ros.py``
(rosbag2 recordings of the ROS graph, through the trainer node). ``vla.py``: the frozen offline VLA and
D_offline; ``run_ros.py``: ``--env ros`` (starts ``bora up --sim --with trainer``); ``cli.py``: ``bora
train online``; ``config.py``: the run and loop configurations.
"""
