import { registerStorage } from './driver.js';

registerStorage('dir', async () => (await import('./dir.js')).dirDriver);
registerStorage('overlay', async () => (await import('./overlay.js')).overlayDriver);
registerStorage('reflink', async () => (await import('./reflink.js')).reflinkDriver);

export { defaultStorage, storageDriver, storageNames, type StorageDriver } from './driver.js';
