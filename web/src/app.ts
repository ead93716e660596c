document.body.textContent = 'jaula';
