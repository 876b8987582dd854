/**
 * Which benchmark campaigns a donor tab runs, one at a time, once it serves layers: the one its
 * join link names (`?campaign=<id>`), and, while its visitor has opted in on the donor page
 * ("also run benchmark campaigns", off by default), every running campaign of the model it
 * serves, found by asking the server now and then. Each campaign is run once per tab
 * (campaign-runner.ts). The visitor can leave the campaign under way, or opt out, at any time;
 * a tab that closes sends its signed `left` report as a beacon.
 */
import type { SignedTabReport } from '../../shared/campaign/tab-report.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { runCampaign } from './campaign-runner.ts';
import type { CampaignProgress, CampaignRunnerDeps, CampaignRunnerOptions } from './campaign-runner.ts';

/** An opted-in tab asks for new campaigns this often. */
export const CAMPAIGN_POLL_MS = 15_000;

export interface CampaignParticipationOptions extends Omit<CampaignRunnerOptions, 'campaignId' | 'layers'> {
  /** the campaign of the tab's join link */
  joinLink?: string;
  /** whether the visitor opted in to campaigns on the page */
  optedIn: boolean;
}

export interface CampaignParticipationDeps extends Omit<CampaignRunnerDeps, 'signal' | 'leave' | 'progress'> {
  progress(p: CampaignProgress | undefined): void;
  /** sends a report as the page closes (navigator.sendBeacon in a browser) */
  beacon?: (url: string, body: string) => void;
}

export interface CampaignParticipation {
  /** The tab serves these layers now: campaigns run on them. */
  serving(layers: LayerRange): void;
  optIn(on: boolean): void;
  /** Leaves the campaign under way (reported as left); an opted-in tab goes on to others. */
  leave(): void;
  /** The page is closing: the campaign under way is told, by beacon. */
  pageClosing(): void;
  stop(): void;
}

interface Listed {
  id: string;
  state: string;
  models: string[];
}

const defaultBeacon = (url: string, body: string) => void globalThis.navigator?.sendBeacon?.(url, new Blob([body], { type: 'application/json' }));

export function createCampaignParticipation(o: CampaignParticipationOptions, deps: CampaignParticipationDeps): CampaignParticipation {
  const fetchFn = deps.fetch ?? fetch;
  let optedIn = o.optedIn;
  let layers: LayerRange | undefined;
  let stopped = false;
  let running: AbortController | undefined;
  let looping = false;
  /** set when the loop is woken (opted in, stopped) while it is not waiting, so its next wait ends at once */
  let woken = false;
  let wakeUp: (() => void) | undefined;
  let closing: { url: string; report: SignedTabReport } | undefined;
  const tried = new Set<string>();

  const wake = () => {
    woken = true;
    wakeUp?.();
  };
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wakeUp = undefined;
        woken = false;
        resolve();
      };
      const timer = setTimeout(done, woken ? 0 : ms);
      wakeUp = done;
    });

  /** The join link's campaign, then (opted in) the first running one of the tab's model it has not run; none when the server cannot say. */
  async function nextCampaign(): Promise<string | undefined> {
    if (o.joinLink && !tried.has(o.joinLink)) return o.joinLink;
    if (!optedIn) return undefined;
    try {
      const res = await fetchFn(new URL('/api/campaigns', o.serverUrl));
      if (!res.ok) return undefined;
      const { campaigns } = (await res.json()) as { campaigns: Listed[] };
      return campaigns.find((c) => c.state === 'running' && !tried.has(c.id) && c.models.some((m) => m === o.model.id || m === o.model.name))?.id;
    } catch {
      // Unreachable, or an answer that is not the list (a proxy's error page): asked again at the next poll.
      return undefined;
    }
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      const id = await nextCampaign();
      // The visitor may have opted out, or the donor stopped, while the server was asked.
      if (stopped) break;
      if (!id || !layers || (id !== o.joinLink && !optedIn)) {
        await wait(optedIn ? CAMPAIGN_POLL_MS : 3_600_000);
        continue;
      }
      tried.add(id);
      running = new AbortController();
      try {
        await runCampaign(
          { ...o, campaignId: id, layers },
          {
            ...deps,
            signal: running.signal,
            progress: (p) => deps.progress({ ...p }),
            leave: (url, report) => (closing = report && { url, report }),
          },
        );
      } catch (err) {
        deps.progress({ id, done: 0, total: 0, refused: 0, status: 'failed', note: `${(err as Error).name}: ${(err as Error).message}` });
      }
      running = undefined;
      closing = undefined;
    }
  }

  return {
    serving(now) {
      // Runs on other layers than the engine now holds would claim layers it no longer runs.
      if (layers && (layers.start !== now.start || layers.end !== now.end)) running?.abort('the tab was given other layers');
      layers = now;
      if (looping) return;
      looping = true;
      void loop();
    },
    optIn(on) {
      optedIn = on;
      if (on) wake();
      else running?.abort('opted out');
    },
    leave: () => running?.abort('left the campaign'),
    pageClosing() {
      if (closing) (deps.beacon ?? defaultBeacon)(closing.url, JSON.stringify(closing.report));
      closing = undefined;
    },
    stop() {
      stopped = true;
      running?.abort('the donor stopped');
      wake();
    },
  };
}
