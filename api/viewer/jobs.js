// Scenario jobs from the viewer panels: submit a process as an async job, follow it until it ends.
import { getJSON, postJSON } from "./api.js";
import { t } from "./i18n.js";

const POLL_MS = 1000;

/** Submit `processId` with `inputs` (Prefer: respond-async); resolves to the job id, or throws an Error
 * whose message is for the user (no key, no scope, the server's reason). */
export async function submitJob(processId, inputs) {
  const r = await postJSON(`/ogc/processes/${processId}/execution`, { inputs }, { Prefer: "respond-async" });
  if (r.status === 401) throw new Error(t("badKey"));
  if (r.status === 403) throw new Error(t("noScope"));
  if (r.status >= 400 || !r.body) throw new Error(`${t("runFailed")}: ${(r.body && r.body.description) || r.status}`);
  // 200: it ran synchronously and the results document came back; the job is in the Link header
  const id = r.status === 200 ? ((r.headers.get("Link") || "").match(/jobs\/([^>]+)>/) || [])[1] : r.body.jobID;
  if (!id) throw new Error(`${t("runFailed")}: ${r.status}`);
  return id;
}

/** Poll job `jobId` every second, passing each status document to `onStatus`, until it ends. Resolves to
 * the final document, or null as soon as `wanted()` turns false (the panel moved on); rejects when the
 * status cannot be read. */
export async function followJob(jobId, onStatus, wanted = () => true) {
  for (;;) {
    const job = await getJSON(`/ogc/jobs/${jobId}`);
    if (!wanted()) return null;
    onStatus(job);
    if (job.status !== "accepted" && job.status !== "running") return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!wanted()) return null;
  }
}
