"""``bora demo``: the whole pipeline on the simulated robot. ``cli`` (the command), ``config`` (DemoConfig),
``plan`` (the jobs of every stage), ``run`` (running a stage's jobs), ``summary`` (the success table)."""
