/**
 * The REST API of mlmagic's Jupyter server extension (mlmagic/server/handlers.py).
 *
 * Requests go through ServerConnection, so they carry the server's token or cookie and
 * its XSRF header like JupyterLab's own.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One version of an environment. */
export interface IEnvironment {
  name: string;
  version: number;
  status: string;
  image: string;
  created: number | null;
  size: number | null;
}

/** A run as the panel lists it; times are epoch seconds of the server's clock. */
export interface IRun {
  id: string;
  experiment: string;
  name: string | null;
  status: string;
  live: boolean;
  environment: string;
  script: string;
  target: string;
  created: number;
  started: number | null;
  ended: number | null;
  duration: number | null;
  exit_code: number | null;
  error: string | null;
  cancel_requested: boolean;
}

/**
 * The runs, and the server's time when it listed them.
 *
 * `cursor` marks the workspace's latest change to a run: asked again with `since` set to
 * it, the server answers only the runs changed after it (`full` false), to merge by id
 * into the previous list; `full` true means `runs` is the whole list.
 */
export interface IRunList {
  runs: IRun[];
  now: number;
  cursor: number;
  full: boolean;
}

/** A deployed model. */
export interface IService {
  name: string;
  state: string;
  url: string;
  scoring_uri: string;
  models: string;
  environment: string;
}

/** One reply of the log offset protocol. */
export interface ILogChunk {
  text: string;
  offset: number;
  size: number;
  live: boolean;
  status: string;
}

/** The workspace the server shows. */
export interface IWorkspace {
  path: string;
  exists: boolean;
  version: string;
}

/** An error answer of the API, with the server's message. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/** The most runs the panel lists (the newest). */
export const RUNS_LIMIT = 100;

let settings: ServerConnection.ISettings | null = null;

function serverSettings(): ServerConnection.ISettings {
  if (settings === null) {
    settings = ServerConnection.makeSettings();
  }
  return settings;
}

/** The URL of an API path, for links the browser opens itself. */
export function apiUrl(...path: string[]): string {
  return URLExt.join(
    serverSettings().baseUrl,
    'mlmagic/api',
    ...path.map(encodeURIComponent)
  );
}

/** Call the API; resolve with the decoded JSON, reject with an ApiError. */
export async function request<T>(
  path: string[],
  init: RequestInit = {},
  query: Record<string, string | number> = {}
): Promise<T> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    params.set(key, String(value));
  }
  const search = params.toString();
  const url = apiUrl(...path) + (search ? `?${search}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, serverSettings());
  } catch (error) {
    throw new ApiError(
      `The Jupyter server does not answer: ${(error as Error).message}`,
      0
    );
  }
  const body = await response.text();
  let data: any = null;
  try {
    data = body ? JSON.parse(body) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    let message = data?.error ?? data?.message ?? response.statusText;
    if (response.status === 404 && data?.error === undefined) {
      message =
        "mlmagic's server extension does not answer: enable it with " +
        '`jupyter server extension enable mlmagic` and restart JupyterLab.';
    }
    throw new ApiError(message, response.status);
  }
  return data as T;
}

/** The run as its details tab shows it (GET runs/<id>/overview). */
export interface IRunOverview {
  id: string;
  experiment: string;
  name: string | null;
  status: string;
  live: boolean;
  cancel_requested: boolean;
  script: string;
  args: string[];
  environment: string;
  image: string | null;
  target: string;
  exit_code: number | null;
  error: string | null;
  created: number;
  started: number | null;
  ended: number | null;
  duration: number | null;
  tags: Record<string, string>;
  distributed: string | null;
  /** Stage name → [started, ended] (epoch seconds; ended null while in it). */
  stages: Record<string, [number, number | null]>;
  params: Record<string, unknown>;
  models: IModel[];
  environment_version: { ref: string; status: string; image: string } | null;
}

/** One logged value of a metric. */
export interface IMetricPoint {
  name: string;
  step: number;
  value: number | null;
  time: number;
  rank: number;
}

/**
 * Values logged from byte `since` of the run's metric file; ask again with `since` set to
 * `cursor` for what comes next. Complete once `live` is false and nothing new came.
 */
export interface IMetricChunk {
  metrics: IMetricPoint[];
  since: number;
  cursor: number;
  live: boolean;
  status: string;
}

/** A file of a run's outputs/ or logs/. */
export interface IRunFile {
  path: string;
  size: number | null;
  modified: number;
  kind: 'file' | 'link';
}

/** The files of a run, and where JupyterLab's file browser reaches its folder (or null). */
export interface IRunFiles {
  files: IRunFile[];
  truncated: boolean;
  lab_path: string | null;
}

/** A run of a comparison: its row, params and the last value of each metric. */
export interface ICompared extends IRun {
  params: Record<string, unknown>;
  metrics: Record<string, number | null>;
}

/** One registered model version and what uses it. */
export interface IModel {
  name: string;
  version: number;
  ref: string;
  file: string;
  run_id: string | null;
  experiment: string | null;
  environment: string | null;
  tags: Record<string, string>;
  description: string | null;
  created: number;
  services: string[];
}

/** A summary of an environment version in a lineage. */
export interface IEnvironmentRef {
  ref: string;
  name: string;
  version: number;
  image: string;
  status: string;
}

/** A service back to its models, their runs, environments and images. */
export interface ILineage {
  service: {
    name: string;
    state: string;
    url: string;
    image: string | null;
    target: string;
    environment: string;
  };
  environment: IEnvironmentRef | null;
  models: (Partial<IModel> & {
    ref: string;
    missing?: boolean;
    run: {
      id: string;
      experiment: string;
      status: string;
      environment: string;
      image: string | null;
      target: string;
    } | null;
    run_environment: IEnvironmentRef | null;
  })[];
}

/** One environment version in full. */
export interface IEnvironmentDetails {
  ref: string;
  name: string;
  version: number;
  versions: number[];
  format: string;
  status: string;
  image: string;
  venv: string | null;
  size: number | null;
  created: number | null;
  error: string | null;
  dockerfile: string;
  packages: string[] | null;
  runs: { id: string; experiment: string; status: string; created: number }[];
  models: IModel[];
}

/** Unified diffs between two versions of an environment ('' where equal). */
export interface IEnvironmentDiff {
  old: string;
  new: string;
  packages: string;
  dockerfile: string;
}

/** The URL a file of a run downloads from. */
export function runFileUrl(runId: string, path: string): string {
  return apiUrl('runs', runId, 'files') + '/' + path.split('/').map(encodeURIComponent).join('/');
}

export const api = {
  workspace: (): Promise<IWorkspace> => request(['workspace']),
  environments: (): Promise<{ environments: IEnvironment[] }> =>
    request(['environments']),
  runs: (since: number | null = null, limit = RUNS_LIMIT): Promise<IRunList> =>
    request(['runs'], {}, since === null ? { limit } : { limit, since }),
  services: (): Promise<{ services: IService[] }> => request(['services']),
  log: (id: string, offset: number): Promise<ILogChunk> =>
    request(['runs', id, 'log'], {}, { offset }),
  cancel: (id: string): Promise<IRun> =>
    request(['runs', id, 'cancel'], { method: 'POST' }),
  deleteService: (name: string): Promise<{ deleted: string }> =>
    request(['services', name], { method: 'DELETE' }),
  overview: (id: string): Promise<IRunOverview> => request(['runs', id, 'overview']),
  metrics: (id: string, since: number): Promise<IMetricChunk> =>
    request(['runs', id, 'metrics'], {}, { since }),
  files: (id: string): Promise<IRunFiles> => request(['runs', id, 'files']),
  compare: (ids: string[]): Promise<{ runs: ICompared[]; now: number }> =>
    request(['compare'], {}, { runs: ids.join(',') }),
  models: (): Promise<{ models: IModel[] }> => request(['models']),
  lineage: (service: string): Promise<ILineage> =>
    request(['services', service, 'lineage']),
  environment: (name: string, version: number): Promise<IEnvironmentDetails> =>
    request(['environments', name, String(version)]),
  environmentDiff: (name: string, version: number, other: number): Promise<IEnvironmentDiff> =>
    request(['environments', name, String(version), 'diff'], {}, { with: other })
};
