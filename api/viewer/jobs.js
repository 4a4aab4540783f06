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

/** What the scenario panels share: run a process as a job, follow it, show failures. A subclass has a
 * `runButton` selector and the hooks message(text), closeResults(), renderProgress(), showForm(show),
 * open(jobId) and refreshJobs(). */
export class JobPanel {
  constructor(element, runButton) {
    this.element = element;
    this.runButton = runButton;
    this.following = null;   // the job being followed (a token); null stops following
    this.job = null;         // its latest status document
  }

  setRunning(running) {
    this.element.querySelector(this.runButton).disabled = running;
  }

  /** Submit and follow; resolves to the job id, or null when it could not start. */
  async submit(processId, inputs) {
    this.message("");
    this.setRunning(true);
    try {
      const id = await submitJob(processId, inputs);
      await this.follow(id);
      return id;
    } catch (error) {
      this.state = "failed";
      this.message(error.message || String(error));
      this.setRunning(false);
      return null;
    }
  }

  /** Follow a job until it ends, showing its progress; open its results when it succeeds. */
  async follow(jobId) {
    const token = (this.following = Symbol(jobId));
    this.state = "running";
    this.closeResults();
    this.setRunning(true);
    let job;
    try {
      job = await followJob(jobId, (status) => {
        this.job = status;
        this.renderProgress();
        this.showForm(false);
      }, () => this.following === token);
    } catch (error) {
      this.fail(`${t("runFailed")}: ${error.message}`);
      return;
    }
    if (!job) return;
    if (job.status === "successful") await this.open(jobId);
    else this.fail(`${t("runFailed")}: ${job.message || job.status}`);
  }

  fail(text) {
    this.state = "failed";
    this.showForm(true);
    this.message(text);
    this.setRunning(false);
    this.refreshJobs();
  }
}
