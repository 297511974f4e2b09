/* The report's only script, inlined verbatim into report.html. The Airflow plugin's CSP allows it
   by the sha256 of this exact text (metgan.viz.report.SCRIPT is this file), so the template must
   insert it unchanged. */
(function(){
  var table=document.getElementById('leaderboard');
  var headers=table.querySelectorAll('thead th');
  headers.forEach(function(th,column){
    th.querySelector('button').addEventListener('click',function(){
      var numeric=th.dataset.kind==='number';
      var ascending=th.getAttribute('aria-sort')!=='ascending';
      headers.forEach(function(other){other.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',ascending?'ascending':'descending');
      var body=table.tBodies[0];
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[column].dataset.value,y=b.cells[column].dataset.value;
        if(x===''&&y==='')return 0;
        if(x==='')return 1;
        if(y==='')return -1;
        var order=numeric?parseFloat(x)-parseFloat(y):x.localeCompare(y);
        return ascending?order:-order;
      });
      rows.forEach(function(row){body.appendChild(row);});
    });
  });
  document.querySelectorAll('.graphs').forEach(function(box){
    var tabs=box.querySelectorAll('[role=tab]'),figures=box.querySelectorAll('figure');
    tabs.forEach(function(tab){
      tab.addEventListener('click',function(){
        tabs.forEach(function(other){other.setAttribute('aria-selected',String(other===tab));});
        figures.forEach(function(figure,index){figure.hidden=String(index)!==tab.dataset.show;});
      });
    });
  });
})();
