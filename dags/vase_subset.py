"""Build a training subset (vases by default) whenever new images land, or by hand.

Selects objects with the named SQL in ``sql/queries/``, resizes their images in parallel into
``<data_dir>/subsets/<name>/`` and records them in ``subsets`` / ``subset_images``. Only images
not built before with the same parameters are processed. Emits ``metgan://subsets/<name>`` only
after a build that produced images; a build that produces none fails the task.

Every form field is submittable as it stands: the lists a user may empty (exclude,
classifications) and the ratio accept null, which the trigger form sends for an emptied field
(a type without "null" makes the form call the field required and refuse the run).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from metgan import assets
from metgan.names import NAME_PATTERN


@dag(
    dag_id="vase_subset",
    schedule=[assets.IMAGES],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["metgan", "subset"],
    doc_md=__doc__,
    params={
        "name": Param("vases", type="string", pattern=NAME_PATTERN, title="Subset name (letters, digits, - and _)"),
        "include": Param(["vase"], type="array", items={"type": "string"}, title="Include words",
                         description="the object name contains one of these words (whole words, any case, "
                                     "optional plural: 'vase' matches Bottle vase, not Vaseline jar)"),
        "exclude": Param(["fragment", "fragmentary", "sherd"], type=["null", "array"], items={"type": "string"},
                         title="Exclude words", description="empty: leave nothing out"),
        "classifications": Param([], type=["null", "array"], items={"type": "string"}, title="Classifications",
                                 description="also include these classifications (e.g. Vases)"),
        "size": Param("128x160", type="string", pattern=r"^\d+x\d+$", title="Size (WxH)"),
        "policy": Param("pad", enum=["pad", "crop", "stretch"], title="Shape policy",
                        description="pad with the background colour, crop the centre, or stretch"),
        "mode": Param("rgb", enum=["rgb", "grayscale"], title="Colour"),
        "ratio": Param(None, type=["null", "number"], exclusiveMinimum=0, title="Target height/width",
                       description="empty: the size's own ratio (5:4 portrait for 128x160)"),
        "tolerance": Param(0.15, type="number", minimum=0, title="Ratio tolerance"),
    },
)
def vase_subset():
    @task(outlets=[assets.SUBSETS])
    def build_subset(params: dict | None = None, outlet_events=None) -> dict:
        from metgan.images.subset import build_subset as build

        name = params["name"]
        keys = ("include", "exclude", "classifications", "size", "policy", "mode", "ratio", "tolerance")
        # An emptied list field arrives as null and means an empty list, not the default.
        given = {"exclude": [], "classifications": [], **{key: params[key] for key in keys
                                                           if params.get(key) is not None}}
        summary = build(name, given)      # raises SubsetError when nothing was built: no asset event
        outlet_events[assets.SUBSETS].add(assets.subset(name))
        return summary

    build_subset()


vase_subset()
