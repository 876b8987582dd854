/** The donor page: opening it makes this tab part of the grid (donor.ts) and shows what it does (page.ts, view.ts). */
import { openDonorPage } from './page.ts';

openDonorPage();
