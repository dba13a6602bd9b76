/**
 * The ids of mlmagic's commands, in one place: views open one another through the
 * command registry (a run's details, a comparison, an environment version, a service's
 * lineage), so no view imports another.
 */

/** Open a run's details tab: `{ id }`. */
export const OPEN_RUN = 'mlmagic:open-run';
/** Re-run a run's snapshot with its options, changed in the submit dialog: `{ id }`. */
export const RERUN_RUN = 'mlmagic:rerun';
/** The URL query that opens a run's details (the run widget's link): `?mlmagic-details=<id>`. */
export const DETAILS_QUERY = 'mlmagic-details';
/** Ask for a run id, then open its details ("Open run…"). */
export const OPEN_RUN_PROMPT = 'mlmagic:open-run-prompt';
/** Open a comparison of runs: `{ ids: string[] }`. */
export const COMPARE_RUNS = 'mlmagic:compare-runs';
/** Open an environment version's details: `{ name, version }`. */
export const OPEN_ENVIRONMENT = 'mlmagic:open-environment';
/** Open a service's lineage: `{ service }`. */
export const OPEN_LINEAGE = 'mlmagic:open-lineage';
/** Open a file of the workspace in JupyterLab (JupyterLab's own command): `{ path }`. */
export const OPEN_DOCUMENT = 'docmanager:open';

/** `name:version` → `{ name, version }`, or null for anything else. */
export function environmentArgs(ref: string | null): { name: string; version: number } | null {
  const match = /^(.+):(\d+)$/.exec(ref ?? '');
  return match ? { name: match[1], version: Number(match[2]) } : null;
}
