import { registerStorage } from './driver.js';

registerStorage('dir', async () => (await import('./dir.js')).dirDriver);

export { storageDriver, storageNames, type StorageDriver } from './driver.js';
