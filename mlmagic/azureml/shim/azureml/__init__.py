"""mlmagic's stand-in for the ``azureml`` namespace inside a run.

When the real Azure ML SDK is installed in the image, its folders come first in this
package's path, so ``azureml.core`` is the real one; only without it is ours used.
"""

import os
import pkgutil

if __name__ == "azureml":
    _here = os.path.dirname(os.path.abspath(__file__))
    __path__ = pkgutil.extend_path(__path__, __name__)
    __path__ = [p for p in __path__ if os.path.abspath(p) != _here] + [_here]
