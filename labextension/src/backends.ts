/**
 * The GPU backends the server offers, as the picker shows them.
 *
 * Everything here comes from the server: GET info lists each backend's forms and isolation,
 * GET pool the MIG profiles its nodes advertise, GET price what a slice costs there. Nothing
 * about a backend (its keys, forms or limits) is written down on this side.
 */
import { IBackendPool, ICharge, IGpuBackend, IInfo, IPool } from './api';
import { BITFUSION_FORMS } from './picker';

/** The backends GET info offers, in its order (the first is the default). */
export function backendsOf(info: IInfo | null): IGpuBackend[] {
  return info?.gpu_backends ?? [];
}

/** The backend called `name`, else the server's default, else null (an older server). */
export function chosenBackend(
  info: IInfo | null,
  name: string | null
): IGpuBackend | null {
  const backends = backendsOf(info);
  const wanted = name ?? info?.default_gpu_backend ?? null;
  return (
    backends.find(backend => backend.name === wanted) ?? backends[0] ?? null
  );
}

/** The slice forms the chosen backend honours (Bitfusion's when the server does not say). */
export function formsOf(backend: IGpuBackend | null): string[] {
  return backend?.forms ?? BITFUSION_FORMS;
}

/** An option of the backend menu: its title beside its isolation label. */
export function backendLabel(backend: IGpuBackend): string {
  return `${backend.title} · ${backend.isolation.label}`;
}

/** The MIG profiles some node advertises for `backend`, as GET pool lists them. */
export function migProfilesOf(pool: IPool | null, backend: string): string[] {
  const mine: IBackendPool | undefined = pool?.gpu_pools?.[backend];
  return mine?.mig_profiles ?? [];
}

/** What a slice costs on a backend without Bitfusion units, e.g. `1 GPUs (nvidia.com/gpu)`. */
export function chargesText(charges: readonly ICharge[]): string {
  return charges
    .map(charge => `${charge.amount} ${charge.unit} (${charge.resource})`)
    .join(', ');
}
