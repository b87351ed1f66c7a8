"""The application wing: the ``jaxnn`` command line and what only it needs.

The library (``jaxnn.layers``, ``jaxnn.models``, ``jaxnn.train``, ...) never imports this
package. Here live the commands (:mod:`jaxnn.app.cli`), the recipes per model and dataset
(:mod:`jaxnn.app.recipes`), rebuilding a finished run and predicting with it
(:mod:`jaxnn.app.predict`) and the doctor command (:mod:`jaxnn.app.doctor`; its engine is the
library's :mod:`jaxnn.diagnostics.doctor`). The command applies the process-wide host-memory
setting (:mod:`jaxnn.host_memory`) at its start; the library never does.
"""
