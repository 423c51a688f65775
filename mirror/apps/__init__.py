"""App folders: what one deployable app asks for (requirements files, environment.yml, runtime.txt).

Step 1 of the flow (apps → resolve → fetch → store → publish → serve). Also here: reqfile
(requirements files as pip reads them), appfiles (bounded reads inside the app folder), direct (git,
local and URL packages built into files), git.
"""

from airgap_mirror.apps.spec import APT_FILES, MAX_REQUIREMENTS, REQUIREMENT_FILES, AppRules, AppSpec, load_app

__all__ = ["APT_FILES", "AppRules", "AppSpec", "MAX_REQUIREMENTS", "REQUIREMENT_FILES", "load_app"]
