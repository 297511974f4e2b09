"""Present results: annotated progress GIFs, image-and-graph GIFs, score plots and the search report.

Everything here works from the files of a trial or search folder alone (no database, no Airflow,
no TensorFlow): ``metgan.viz.render.render_trial`` and ``metgan.viz.report.publish_report``.
"""
